// Routes per role: each page names the roles that may open it; the left navigation is built
// from the same table, so a person sees only what they may use.
import { createRouter, createWebHistory } from 'vue-router'
import { loadSession, session } from '../stores/session'
import AdminLayout from '../layout/AdminLayout.vue'

export const pages = [
  { path: 'office/register', title: '意见登记', roles: ['office'], icon: 'EditPen', component: () => import('../views/office/RegisterView.vue') },
  { path: 'office/import', title: '批量导入', roles: ['office'], icon: 'Upload', component: () => import('../views/office/ImportView.vue') },
  { path: 'triage', title: '分类交办', roles: ['editor', 'admin'], icon: 'Share', component: () => import('../views/triage/TriageView.vue') },
  { path: 'office/opinions', title: '我的意见', roles: ['office', 'editor'], icon: 'List', component: () => import('../views/office/MyOpinionsView.vue') },
  { path: 'office/members', title: '委员/代表名册', roles: ['office'], icon: 'UserFilled', component: () => import('../views/office/MembersView.vue') },
  { path: 'department/inbox', title: '承办待办', roles: ['department'], icon: 'Tickets', component: () => import('../views/department/InboxView.vue') },
  { path: 'supervisor/dashboard', title: '督查督办', roles: ['supervisor', 'admin'], icon: 'DataLine', component: () => import('../views/supervisor/DashboardView.vue') },
  { path: 'themes', title: '每月一题', roles: ['supervisor', 'admin', 'department'], icon: 'Flag', component: () => import('../views/supervisor/ThemesView.vue') },
  { path: 'supervisor/supervision', title: '督办事项', roles: ['supervisor', 'admin'], icon: 'Bell', component: () => import('../views/supervisor/SupervisionView.vue') },
  { path: 'supervisor/points', title: '履职积分', roles: ['supervisor', 'admin'], icon: 'Trophy', component: () => import('../views/supervisor/MembersPointsView.vue') },
  { path: 'subscriptions', title: '通知订阅', roles: ['office', 'department', 'supervisor', 'admin'], icon: 'Message', component: () => import('../views/common/SubscriptionsView.vue') },
  { path: 'editorial/reviews', title: '答复审核', roles: ['office', 'supervisor'], icon: 'DocumentChecked', component: () => import('../views/editorial/ReviewView.vue') },
  { path: 'editorial/reports', title: '信息专报', roles: ['editor', 'supervisor'], icon: 'Memo', component: () => import('../views/editorial/ReportsView.vue') },
  { path: 'editorial/topics', title: '专题', roles: ['editor', 'supervisor', 'admin'], icon: 'TrendCharts', component: () => import('../views/editorial/TopicsView.vue') },
  { path: 'admin/people', title: '用户管理', roles: ['admin'], icon: 'User', component: () => import('../views/admin/PeopleView.vue') },
  { path: 'admin/units', title: '单位管理', roles: ['admin'], icon: 'OfficeBuilding', component: () => import('../views/admin/UnitsView.vue') },
  { path: 'admin/system', title: '系统管理', roles: ['admin'], icon: 'Setting', component: () => import('../views/admin/SystemView.vue') },
  { path: 'audit', title: '审计日志', roles: ['supervisor', 'admin'], icon: 'Document', component: () => import('../views/admin/AuditView.vue') },
]

const hidden = [
  { path: 'cases/:id', title: '案件详情', roles: ['department', 'supervisor', 'office', 'editor', 'admin'], component: () => import('../views/department/CaseView.vue') },
  { path: 'opinions/:id', title: '意见详情', roles: ['office', 'editor'], component: () => import('../views/office/OpinionView.vue') },
  { path: 'password', title: '修改密码', roles: null, component: () => import('../views/login/PasswordView.vue') },
  { path: 'forbidden', title: '无权访问', roles: null, component: () => import('../views/ForbiddenView.vue') },
]

export function homeOf(role) {
  return '/' + (pages.find((p) => p.roles.includes(role))?.path || 'password')
}

const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/login', component: () => import('../views/login/LoginView.vue'), meta: { public: true, title: '登录' } },
    { path: '/track', component: () => import('../views/public/TrackView.vue'), meta: { public: true, title: '进度查询' } },
    { path: '/feedback/:token', component: () => import('../views/public/FeedbackView.vue'), meta: { public: true, title: '评价' } },
    {
      path: '/',
      component: AdminLayout,
      children: [
        { path: '', redirect: () => homeOf(session.user?.role) },
        ...[...pages, ...hidden].map((p) => ({ path: p.path, component: p.component, meta: { title: p.title, roles: p.roles } })),
      ],
    },
    { path: '/:rest(.*)*', redirect: '/' },
  ],
})

router.beforeEach(async (to) => {
  document.title = `${to.meta.title || ''} - 民意直通车`
  if (to.meta.public) return true
  if (!session.loaded || !session.user) await loadSession()
  if (!session.user) return { path: '/login', query: { next: to.fullPath } }
  if (to.meta.roles && !to.meta.roles.includes(session.user.role)) return '/forbidden'
  return true
})

export default router
